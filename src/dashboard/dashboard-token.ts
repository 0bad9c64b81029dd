import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';

/** The cookie a browser keeps the token in, once it came with `?token=`. */
export const TOKEN_COOKIE = 'pgferry_dashboard_token';

/** Whether a request carries the token: `Authorization: Bearer …` or the cookie. */
export function hasToken(req: IncomingMessage, token: string): boolean {
  const auth = req.headers.authorization;
  if (auth?.startsWith('Bearer ') && sameSecret(auth.slice(7).trim(), token)) return true;
  const cookie = cookieValue(req.headers.cookie, TOKEN_COOKIE);
  return cookie !== undefined && sameSecret(cookie, token);
}

/** Compares in constant time (hashes first: timingSafeEqual needs equal lengths). */
export function sameSecret(given: string, token: string): boolean {
  const digest = (s: string) => createHash('sha256').update(s).digest();
  return timingSafeEqual(digest(given), digest(token));
}

function cookieValue(header: string | undefined, name: string): string | undefined {
  for (const part of header?.split(';') ?? []) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) {
      try {
        return decodeURIComponent(part.slice(eq + 1).trim());
      } catch {
        return undefined;
      }
    }
  }
  return undefined;
}
