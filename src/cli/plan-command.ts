import { Command } from 'commander';

import { EXIT } from '../errors.js';
import { readPlan } from '../plans/plan-file.js';
import { type PlanRunState, planStatus, type PlanStepState } from '../plans/plan-run.js';
import { runPlan } from '../plans/run-plan.js';
import { textTable } from '../report/text-table.js';
import { type GlobalOptions, setExitCode, stdio, wholeNumber, withDatabase } from './context.js';

export function planCommand(global: () => GlobalOptions): Command {
  const plan = new Command('plan').description(
    'run loads and syncs in dependency order (a plan file): independent steps side by side, through the worker',
  );

  plan
    .command('run')
    .description("run a plan: queue its steps for the worker and follow them until the plan's run ends")
    .argument('<plan>', 'the plan file (YAML): its steps, each a load or a sync, with what it waits for')
    .option('--dry-run', 'run every step as a dry run: validated and counted, nothing promoted, no cursor moved')
    .option('--detach', 'queue the run and return at once (pgferry plan status follows it)')
    .option('--json', 'print the final state (with --detach: the run id and the steps queued) as JSON')
    .addHelpText(
      'after',
      `
A plan file names its steps; each is a load (a file, relative to the plan, with tenant and
mapping, and optionally format, delimiter, sheet, records, table, max_rejects,
max_duplicates, force), a sync of the project file (project: FILE, default pgferry.yaml next
to the plan) or a tenant's backup into a folder (backup: TENANT, to: DIR, optionally keep:
N, the last N kept), and may wait for others (after: [names]). Mappings are looked up in
mappings: DIR (default: mappings next to the plan).

  steps:
    safety:    { backup: acme, to: backups, keep: 7 }
    customers: { load: customers.csv, tenant: acme, mapping: customers, after: [safety] }
    suppliers: { load: suppliers.csv, tenant: acme, mapping: suppliers, after: [customers] }
    products:  { load: products.csv, tenant: acme, mapping: products, after: [suppliers] }
    inventory: { sync: legacy_inventory, after: [products] }
    prices:    { load: prices.xlsx, tenant: acme, mapping: prices, sheet: 2, after: [products] }

The whole file is checked before anything runs (unknown keys, unknown steps in after, a
cycle, a missing file, mapping, tenant or sync: an error naming the file and line). A
worker (pgferry worker) runs the steps: those that wait for nothing at once, each other once
all it waits for has succeeded; when a step fails, every step that waits for it, directly or
not, is skipped, while the others go on. With --dry-run each step is checked against the
database as it is: what an earlier step would have promoted is not there. Ctrl-C stops
following, not the run. Exit codes: 0 every step succeeded (or was queued, --detach), 1 a
step failed, 2 bad usage or plan file.

Examples:
  pgferry plan run catalog.plan.yaml
  pgferry plan run catalog.plan.yaml --dry-run
  pgferry plan run nightly.yaml --detach --json`,
    )
    .action(async (file: string, opts: { dryRun?: boolean; detach?: boolean; json?: boolean }) => {
      const checked = await readPlan(file);
      const { runId, queued, final } = await withDatabase(global(), (db) =>
        runPlan(db.pool, checked, {
          dryRun: opts.dryRun,
          detach: opts.detach,
          onEvent: (event) => {
            if (event.type === 'step') {
              if (!opts.json) stdio.out(stepLine(event.step));
              return;
            }
            if (!event.workerRunning) {
              stdio.err(
                'no pgferry worker is running on this database: the plan is queued, and runs once one starts (pgferry worker)',
              );
            }
            if (!opts.detach && !opts.json) {
              stdio.out(
                `plan run ${event.runId}: ${checked.name}, ${checked.steps.length} steps${opts.dryRun ? ', dry run' : ''}`,
              );
            }
          },
        }),
      );
      if (!final) {
        if (opts.json) stdio.out(JSON.stringify({ runId, queued }, null, 2));
        else stdio.out(`plan run ${runId} queued: ${queued.join(', ')} first (pgferry plan status ${runId})`);
        return;
      }
      if (opts.json) stdio.out(JSON.stringify(final, null, 2));
      else stdio.out(`\n${formatPlanState(final)}`);
      if (final.status === 'failed') setExitCode(EXIT.loadFailed);
    });

  plan
    .command('status')
    .description("show a plan's run: each step's status, load, counts, error and prerequisites")
    .argument('[run]', 'the run id (default: the latest run)', wholeNumber('run id'))
    .option('--json', 'print as JSON')
    .addHelpText('after', '\nExamples:\n  pgferry plan status\n  pgferry plan status 7 --json')
    .action(async (runId: number | undefined, opts: { json?: boolean }) => {
      const state = await withDatabase(global(), (db) => planStatus(db.pool, runId));
      stdio.out(opts.json ? JSON.stringify(state, null, 2) : formatPlanState(state));
    });
  return plan;
}

/** One line per change of a step's status, while `plan run` follows the run. */
function stepLine(step: PlanStepState): string {
  const what = step.status === 'pending' ? ` (after ${step.after.join(', ')})` : '';
  const load =
    step.loadId !== null && (step.status === 'succeeded' || step.status === 'failed')
      ? ` (load ${step.loadId}${step.counts ? `: ${countsText(step)}` : ''})`
      : '';
  const error = step.error ? `: ${step.error}` : '';
  return `${step.name}: ${step.status}${what}${load}${error}`;
}

function countsText(step: PlanStepState): string {
  const c = step.counts!;
  return `${c.read} read, ${c.unparseable + c.rejected} rejected, ${c.inserted} inserted, ${c.updated} updated, ${c.unchanged} unchanged`;
}

const time = (d: Date | null) => (d ? d.toISOString().slice(0, 19).replace('T', ' ') : '-');

/** A run's state: a line for the run, a table of its steps, then their errors. */
export function formatPlanState(run: PlanRunState): string {
  const lines = [
    `plan run ${run.id} (${run.name}, ${run.plan}): ${run.status}${run.dryRun ? ', dry run: nothing promoted' : ''}`,
    `started ${time(run.createdAt)}${run.osUser ? ` by ${run.osUser}` : ''}, finished ${time(run.finishedAt)}`,
    '',
    textTable(
      ['step', 'kind', 'status', 'load', 'read', 'rejected', 'inserted', 'updated', 'unchanged', 'after'],
      run.steps.map((s) => [
        s.name,
        s.kind,
        s.status,
        s.loadId,
        s.counts?.read,
        s.counts ? s.counts.unparseable + s.counts.rejected : null,
        s.counts?.inserted,
        s.counts?.updated,
        s.counts?.unchanged,
        s.after.length > 0 ? s.after.join(', ') : '-',
      ]),
    ),
  ];
  const errors = run.steps.filter((s) => s.error);
  if (errors.length > 0) lines.push('', 'errors:', ...errors.map((s) => `  ${s.name}: ${s.error}`));
  return lines.join('\n');
}
