/** One line of `pgferry doctor`: what was checked, how it stands, and what to do about it. */
export interface DoctorFinding {
  /** The area checked: `server`, `role`, `createrole`, `database`, `schema`, `tables`, … */
  check: string;
  /** `fail`: a command will fail; `warn`: it may, or it is unsafe; `ok`: nothing to do. */
  status: 'ok' | 'warn' | 'fail';
  message: string;
  /** What to run or change, when status is not ok. */
  fix?: string;
}

export const ok = (check: string, message: string): DoctorFinding => ({ check, status: 'ok', message });
export const warn = (check: string, message: string, fix: string): DoctorFinding => ({
  check,
  status: 'warn',
  message,
  fix,
});
export const fail = (check: string, message: string, fix: string): DoctorFinding => ({
  check,
  status: 'fail',
  message,
  fix,
});
