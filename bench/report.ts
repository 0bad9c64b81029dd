// The benchmark's figures as markdown: one table of cases per size, the pgferry step timings,
// and the machine they were measured on.

/** One timed run of one case. */
export interface Sample {
  seconds: number;
  maxRssKb?: number;
  /** Rows of the target whose current version this run wrote (inserted or rewritten). */
  rowsWritten?: number;
  /** WAL the server wrote during the run. */
  walBytes?: number;
  /** pgferry's step timings in ms, for the pgferry cases. */
  timings?: Record<string, number>;
  counts?: Record<string, number>;
}

export interface CaseResult {
  /** The case's number in the issue: 1, 2, 3, 4, 5a, … */
  id: string;
  label: string;
  samples: Sample[];
  /** Why the case did not run at all. */
  skipped?: string;
  /** The error that stopped it. */
  error?: string;
  /** Checks of its outcome that failed (wrong row counts, …). */
  problems: string[];
}

export interface SizeResult {
  rows: number;
  file: string;
  fileBytes: number;
  cases: CaseResult[];
  notes: string[];
}

export interface Machine {
  date: string;
  command: string;
  cpu: string;
  nproc: number;
  memory: string;
  server: string;
  serverSettings: string;
  psql: string;
  node: string;
  /** 1, 5 and 15 minute load average when the run started: other work on the machine skews it. */
  loadAverage: string;
  pgferry: string;
  pgloader: string;
  childBaselineRssKb?: number;
}

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

const thousands = (n: number) => Math.round(n).toLocaleString('en-US');
const mb = (kb: number | undefined) => (kb === undefined ? '—' : `${Math.round(kb / 1024)} MB`);

function caseMedian(result: CaseResult | undefined): number | undefined {
  return result && result.samples.length > 0 && !result.error
    ? median(result.samples.map((s) => s.seconds))
    : undefined;
}

/** The table of cases for one size, with ratios to the floor (1) and to the typed copy (2). */
export function casesTable(size: SizeResult): string {
  const floor = caseMedian(size.cases.find((c) => c.id === '1'));
  const typed = caseMedian(size.cases.find((c) => c.id === '2'));
  const ratio = (value: number, base: number | undefined) => (base ? `${(value / base).toFixed(2)}×` : '—');
  const lines = [
    '| # | case | median s | rows/s | × (1) | × (2) | peak RSS | WAL | rows written | runs (s) |',
    '|---|---|--:|--:|--:|--:|--:|--:|--:|---|',
  ];
  for (const c of size.cases) {
    const m = caseMedian(c);
    if (m === undefined) {
      const why = c.skipped ?? (c.error ? `failed: ${c.error}` : 'no runs');
      lines.push(`| ${c.id} | ${c.label} | — | — | — | — | — | — | — | ${escapeCell(why)} |`);
      continue;
    }
    const rss = c.samples.some((s) => s.maxRssKb !== undefined)
      ? Math.max(...c.samples.map((s) => s.maxRssKb ?? 0))
      : undefined;
    const written = c.samples.map((s) => s.rowsWritten).filter((w): w is number => w !== undefined);
    const writtenText = written.length ? thousands(median(written)) : '—';
    const wal = c.samples.map((s) => s.walBytes).filter((w): w is number => w !== undefined);
    const walText = wal.length ? `${Math.round(median(wal) / 2 ** 20)} MB` : '—';
    const runs = c.samples.map((s) => s.seconds.toFixed(2)).join(', ');
    const flag = c.problems.length ? ' ⚠' : '';
    lines.push(
      `| ${c.id} | ${c.label}${flag} | ${m.toFixed(2)} | ${thousands(size.rows / m)} | ${ratio(m, floor)} | ` +
        `${ratio(m, typed)} | ${mb(rss)} | ${walText} | ${writtenText} | ${runs} |`,
    );
  }
  return lines.join('\n');
}

const STEPS = ['stage', 'transform', 'promote', 'verify', 'cleanup'];

/** Median step timings of the pgferry cases, and the counts of their last run. */
export function stepsTable(size: SizeResult): string {
  const lines = [
    `| # | load() s | ${STEPS.join(' | ')} | other | counts (last run) |`,
    `|---|--:|${STEPS.map(() => '--:').join('|')}|--:|---|`,
  ];
  for (const c of size.cases) {
    const timed = c.samples.filter((s) => s.timings);
    if (timed.length === 0 || c.id.startsWith('3')) continue;
    const cells = STEPS.map((step) => {
      const values = timed.map((s) => s.timings?.[step]).filter((v): v is number => v !== undefined);
      return values.length ? (median(values) / 1000).toFixed(2) : '—';
    });
    // What load() does outside its steps: hashing the file, registering and compiling, counting.
    const other = median(
      timed.map((s) => s.seconds - STEPS.reduce((sum, step) => sum + (s.timings?.[step] ?? 0), 0) / 1000),
    );
    const counts = timed[timed.length - 1].counts ?? {};
    const shown = Object.entries(counts)
      .filter(([key, value]) => value !== 0 || key === 'inserted')
      .map(([key, value]) => `${key} ${thousands(value)}`)
      .join(', ');
    lines.push(
      `| ${c.id} | ${median(timed.map((s) => s.seconds)).toFixed(2)} | ${cells.join(' | ')} | ${other.toFixed(2)} | ${shown} |`,
    );
  }
  return lines.join('\n');
}

function escapeCell(text: string): string {
  return text.replaceAll('|', '\\|').replaceAll('\n', ' ');
}

/** The sections `bench/run.ts` owns in RESULTS.md: one a size, "## 1,000,000 rows (…)". */
export function isSizeHeading(heading: string): boolean {
  return /^## [\d,]+ rows \(/.test(heading);
}

export function sizeSection(size: SizeResult): string {
  const problems = size.cases.flatMap((c) => c.problems.map((p) => `- ⚠ (${c.id}) ${p}`));
  return [
    `## ${thousands(size.rows)} rows (${(size.fileBytes / 1e6).toFixed(1)} MB, \`${size.file}\`)`,
    '',
    casesTable(size),
    '',
    'pgferry step timings (median seconds):',
    '',
    stepsTable(size),
    ...(size.notes.length || problems.length ? ['', ...size.notes.map((n) => `- ${n}`), ...problems] : []),
  ].join('\n');
}

export function machineSection(machine: Machine): string {
  const rows: [string, string][] = [
    ['date', machine.date],
    ['command', `\`${machine.command}\``],
    ['CPU', `${machine.cpu} (nproc ${machine.nproc})`],
    ['memory', machine.memory],
    ['server', machine.server],
    ['server settings', machine.serverSettings],
    ['psql', machine.psql],
    ['pgloader', machine.pgloader],
    ['node', machine.node],
    ['load average at start', machine.loadAverage],
    ['pgferry', machine.pgferry],
  ];
  if (machine.childBaselineRssKb !== undefined) {
    rows.push([
      'child baseline RSS',
      `${mb(machine.childBaselineRssKb)} (Node + tsx + pgferry's modules, pool open, no load: included in every pgferry RSS figure)`,
    ]);
  }
  return ['| machine | |', '|---|---|', ...rows.map(([k, v]) => `| ${k} | ${escapeCell(v)} |`)].join('\n');
}

export function resultsMarkdown(machine: Machine, sizes: SizeResult[]): string {
  return [
    '# pgferry benchmark results',
    '',
    'Written by `bench/run.ts` (see [bench/README.md](README.md) for what each case is and how to read',
    'the ratios). Medians of interleaved runs on one server; × (1) and × (2) are the case’s median',
    'divided by the median of the floor (1) and of `psql \\copy` into the typed table (2).',
    '',
    machineSection(machine),
    '',
    ...sizes.flatMap((s) => [sizeSection(s), '']),
  ].join('\n');
}
