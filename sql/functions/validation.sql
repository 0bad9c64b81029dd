-- Validation: why a staged value is not of its column's type, as the compiled transform
-- (compile.sql) asks it. The transform runs as the tenant, so these live in ferry_util, whose
-- functions the tenant roles may call (tenants.sql grants them to their group); nothing in
-- the schema ferry is for tenant roles.

-- Why a staged value cannot be read as a type, or NULL when it can: what decides which values
-- become `type` rejects. The transform asks it only for the values of a column whose
-- set-based cast failed, or whose cast proves nothing (bit strings and arrays of character
-- strings, which an explicit cast cuts to length), so it runs once per value of a suspect
-- column (see ferry.compile_load).
--
-- PostgreSQL 16+ asks the type's input function softly: ferry_util.soft_input_error, which the
-- compiled transform calls directly there (a SQL function, inlined into its query).
-- PostgreSQL 15 has no soft input, so this function casts: common types into a variable of
-- the type (an assignment planned once, far cheaper than an EXECUTE per value), numeric(p,s)
-- and character(n) through a quick check of PostgreSQL's own rule first, anything else
-- through EXECUTE. The casts run in a subtransaction (the exception block), so the function
-- is parallel unsafe.
create or replace function ferry_util.input_error(p_value text, p_type text) returns text
language plpgsql stable parallel unsafe
as $$
declare
  v_cast      text;
  v_bigint    bigint;
  v_num       numeric;
  v_float     double precision;
  v_bool      boolean;
  v_date      date;
  v_ts        timestamp;
  v_tstz      timestamptz;
  v_uuid      uuid;
  v_precision integer;
  v_scale     integer;
begin
  if current_setting('server_version_num')::integer >= 160000 then
    return ferry_util.soft_input_error(p_value, p_type);
  end if;

  begin
    case p_type
      when 'smallint' then v_bigint := p_value::smallint;
      when 'integer' then v_bigint := p_value::integer;
      when 'bigint' then v_bigint := p_value::bigint;
      when 'numeric' then v_num := p_value::numeric;
      when 'real' then v_float := p_value::real;
      when 'double precision' then v_float := p_value::double precision;
      when 'boolean' then v_bool := p_value::boolean;
      when 'date' then v_date := p_value::date;
      when 'timestamp without time zone' then v_ts := p_value::timestamp;
      when 'timestamp with time zone' then v_tstz := p_value::timestamptz;
      when 'uuid' then v_uuid := p_value::uuid;
      when 'text', 'character varying' then null;
      else
        -- numeric(p,s): rounded to s decimals, the value must have at most p-s digits before
        -- the point; infinities never fit. (String functions: a regular expression here would
        -- cost more than the cast.)
        if right(p_type, 1) = ')' and left(p_type, 8) = 'numeric(' then
          v_precision := split_part(substr(p_type, 9), ',', 1)::int;
          v_scale := rtrim(split_part(p_type, ',', 2), ')')::int;
          v_num := round(p_value::numeric, v_scale);
          if v_precision - v_scale >= 1 and abs(v_num) <> 'Infinity'
             and char_length(trunc(abs(v_num))::text) <= v_precision - v_scale then
            return null;
          end if;
        end if;
        -- character(n), character varying(n): n characters fit (longer ones: below).
        if right(p_type, 1) = ')' and (left(p_type, 10) = 'character(' or left(p_type, 18) = 'character varying(')
           and char_length(p_value) <= rtrim(substr(p_type, strpos(p_type, '(') + 1), ')')::int then
          return null;
        end if;

        -- p_type is spliced into SQL: accept only a type name (with a typmod), never SQL.
        if p_type !~ '^[A-Za-z"][A-Za-z0-9_ ."]*(\([0-9]+(,[0-9]+)?\))?( with(out)? time zone)?(\[\])*$'
           or to_regtype(p_type) is null then
          raise exception 'not a type name: %', p_type using errcode = '22023';
        end if;
        execute format('select %L::%s::text', p_value, p_type) into v_cast;
        -- An explicit cast cuts character and bit strings to length; storing them would not.
        if p_type ~ '^(character|bit)' and char_length(rtrim(v_cast)) < char_length(rtrim(p_value)) then
          return format('value too long for type %s', p_type);
        end if;
    end case;
  exception when data_exception then
    return sqlerrm;
  end;
  return null;
end
$$;
revoke all on function ferry_util.input_error(text, text) from public;

-- PostgreSQL 16+: the type's input function asked softly, pg_input_is_valid first: cheaper
-- than pg_input_error_info for a valid value, by far the common case. Not called on
-- PostgreSQL 15, which has neither function.
create or replace function ferry_util.soft_input_error(p_value text, p_type text) returns text
language sql stable parallel safe
as $$
  select case when pg_input_is_valid(p_value, p_type) then null
              else (pg_input_error_info(p_value, p_type)).message end
$$;
revoke all on function ferry_util.soft_input_error(text, text) from public;
