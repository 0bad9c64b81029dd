import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The dashboard's pages, script and styles, shipped in the package (no CDN: it works offline). */
const ASSETS_DIR = fileURLToPath(new URL('../../assets/dashboard', import.meta.url));

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
};

/** Whether a path is one of the dashboard's pages (one HTML file holds them all). */
export function isPage(pathname: string): boolean {
  return ['/', '/syncs', '/plans', '/workers'].includes(pathname) || /^\/loads\/\d{1,18}$/.test(pathname);
}

/** An asset by its name under /assets/ (a plain file name: nothing else is read). */
export async function readAsset(name: string): Promise<{ body: Buffer; type: string } | null> {
  if (!/^[a-z0-9-]+\.(html|js|css|svg)$/.test(name)) return null;
  try {
    return { body: await readFile(path.join(ASSETS_DIR, name)), type: TYPES[path.extname(name)] };
  } catch {
    return null;
  }
}
