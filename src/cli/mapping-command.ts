import { Command } from 'commander';

import { listMappings } from '../catalog.js';
import { showMapping } from '../mappings/show-mapping.js';
import { textTable } from '../report/text-table.js';
import { type GlobalOptions, stdio, wholeNumber, withDatabase } from './context.js';

export function mappingCommand(global: () => GlobalOptions): Command {
  const mapping = new Command('mapping').description('inspect mappings and the SQL compiled from them');

  mapping
    .command('show')
    .description('show a mapping version: its header, its source and the compiled SQL that ran')
    .argument('<name>', 'mapping name')
    .option('--version <n>', 'version (default: the latest)', wholeNumber('--version'))
    .option('--json', 'print as JSON')
    .addHelpText('after', '\nExamples:\n  pgferry mapping show products\n  pgferry mapping show products --version 2')
    .action(async (name: string, opts) => {
      const chosen = await withDatabase(global(), (db) => showMapping(db.pool, name, { version: opts.version }));
      if (opts.json) {
        stdio.out(JSON.stringify(chosen, null, 2));
        return;
      }
      stdio.out(
        [
          `-- mapping ${chosen.name} version ${chosen.version} (sha256 ${chosen.sha256.slice(0, 12)}), registered ${chosen.createdAt.toISOString()}`,
          `-- target ${chosen.target}, key (${chosen.keyColumns.join(', ')}), on_conflict ${chosen.onConflict}, duplicates ${chosen.duplicates}`,
          `-- from ${chosen.sourcePath ?? '?'}`,
          '',
          chosen.source.trimEnd(),
          '',
          chosen.compiledSql
            ? `-- compiled for its latest load (the load id is part of each name):\n\n${chosen.compiledSql}`
            : '-- not compiled yet: a mapping is compiled by each load that uses it',
        ].join('\n'),
      );
    });

  mapping
    .command('list')
    .description('list mappings and their versions')
    .option('--json', 'print as JSON')
    .action(async (opts) => {
      const versions = await withDatabase(global(), (db) => listMappings(db.pool));
      stdio.out(
        opts.json
          ? JSON.stringify(
              versions.map(({ source: _s, compiledSql: _c, ...v }) => v),
              null,
              2,
            )
          : versions.length === 0
            ? 'no mappings yet: they are registered by their first load'
            : textTable(
                ['mapping', 'version', 'target', 'key', 'registered'],
                versions.map((v) => [
                  v.name,
                  v.version,
                  v.target,
                  v.keyColumns.join(', '),
                  v.createdAt.toISOString().slice(0, 19),
                ]),
              ),
      );
    });
  return mapping;
}
