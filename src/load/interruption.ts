import type { LoadClaim } from './claim.js';

/** `pgferry cancel` stopped the load at a batch boundary; what it did is rolled back. */
export class LoadCancelled extends Error {
  constructor(loadId: number) {
    super(`load ${loadId} was cancelled`);
  }
}

/**
 * The process is stopping (a worker got SIGTERM): the load stops at its next batch and stays
 * resumable; the worker's job is tried again, by this worker once restarted or by another.
 */
export class LoadsStopping extends Error {
  constructor(loadId: number) {
    super(`load ${loadId} stopped at a batch boundary: the process is shutting down`);
  }
}

/**
 * Another process took the load over (its claim connection was lost, and `pgferry resume` or
 * a worker claimed it): this process stops without writing anything more, and leaves the
 * load's status to the process that holds it now.
 */
export class LoadTakenOver extends Error {
  constructor(message: string) {
    super(message);
  }
}

let stopping = false;

/** Every load of this process stops at its next batch boundary (a worker's SIGTERM). */
export function stopLoadsAtNextBatch(): void {
  stopping = true;
}

/** For tests that stop an in-process worker and start another. */
export function letLoadsRunAgain(): void {
  stopping = false;
}

/** Called at each batch boundary: throws when the load is to stop there. */
export function checkInterruption(claim: LoadClaim): void {
  if (claim.takenOver) throw new LoadTakenOver(claim.takenOver);
  if (claim.cancelRequested) throw new LoadCancelled(claim.loadId);
  if (stopping) throw new LoadsStopping(claim.loadId);
}
