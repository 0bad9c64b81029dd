import { randomBytes } from 'node:crypto';
import { open, rename, stat, unlink } from 'node:fs/promises';
import path from 'node:path';
import { Writable } from 'node:stream';

import { PgferryError } from '../errors.js';

/** Where an export's bytes go, and how it is made final or undone. */
export interface ExportOutput {
  /** Ended by the export when the last byte is written. */
  stream: Writable;
  /** After the last byte: the file takes its name. */
  commit(): Promise<void>;
  /** After a failure: nothing is left behind under the name. */
  abort(): Promise<void>;
}

/**
 * Opens the output of an export. A file is written under a temporary name next to it and
 * renamed when complete, so a failed export leaves no partial file (and an existing file
 * stays as it was); something that is not a regular file (`/dev/null`, a named pipe) is
 * written directly. A stream is written as it is and not ended.
 */
export async function openExportOutput(output: string | Writable): Promise<ExportOutput> {
  if (typeof output !== 'string') {
    return { stream: forwardTo(output), commit: async () => {}, abort: async () => {} };
  }
  const file = path.resolve(output);
  const existing = await stat(file).catch(() => undefined);
  if (existing?.isDirectory()) throw new PgferryError(`cannot write ${output}: it is a directory`);
  const direct = existing !== undefined && !existing.isFile();
  const target = direct
    ? file
    : path.join(path.dirname(file), `.${path.basename(file)}.${randomBytes(4).toString('hex')}.tmp`);
  let handle;
  try {
    handle = await open(target, direct ? 'w' : 'wx');
  } catch (error) {
    throw new PgferryError(`cannot write ${output}: ${reason(error)}`, { cause: error });
  }
  const stream = handle.createWriteStream();
  const closed = new Promise<void>((resolve) => stream.once('close', () => resolve()));
  return {
    stream,
    async commit() {
      await closed;
      if (!direct) await rename(target, file);
    },
    async abort() {
      if (!stream.destroyed) stream.destroy();
      await closed;
      if (!direct) await unlink(target).catch(() => {});
    },
  };
}

/**
 * A Writable that passes what it is given on to `destination` (waiting while it is full)
 * without ever ending it, and fails when it fails or closes (stdout closed by `| head`, say).
 * It leaves no listener behind, so one stream can take many exports.
 */
function forwardTo(destination: Writable): Writable {
  const failed = (error: Error) => forward.destroy(error);
  const closed = () => forward.destroy(new Error('the output stream was closed'));
  const detach = () => {
    destination.off('error', failed);
    destination.off('close', closed);
  };
  destination.on('error', failed);
  destination.on('close', closed);
  const forward = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      if (destination.destroyed || destination.writableEnded) {
        callback(new Error('the output stream was closed'));
        return;
      }
      const ok = destination.write(chunk, (error) => {
        if (error) forward.destroy(error);
      });
      if (ok) callback();
      else destination.once('drain', () => callback());
    },
    final(callback) {
      detach();
      callback();
    },
    destroy(error, callback) {
      detach();
      callback(error);
    },
  });
  return forward;
}

function reason(error: unknown): string {
  const code = (error as NodeJS.ErrnoException).code;
  switch (code) {
    case 'EACCES':
    case 'EPERM':
      return 'permission denied';
    case 'ENOENT':
      return 'its folder does not exist';
    case 'ENOTDIR':
      return 'a part of its path is not a folder';
    case 'EROFS':
      return 'read-only file system';
    default:
      return error instanceof Error ? error.message : String(error);
  }
}
