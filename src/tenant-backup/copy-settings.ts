/**
 * The settings a backup's COPY text is written and read under, whatever the server's
 * defaults: dates in ISO order, intervals and bytea in PostgreSQL's own forms, floats with
 * every digit. A date written as 03/04/2026 could otherwise be read back as another day.
 */
export const COPY_SETTINGS = `select set_config('datestyle', 'ISO, YMD', true),
  set_config('intervalstyle', 'postgres', true),
  set_config('extra_float_digits', '1', true),
  set_config('bytea_output', 'hex', true),
  set_config('client_encoding', 'UTF8', true)`;
