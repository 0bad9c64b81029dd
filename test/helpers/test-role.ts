import type pg from 'pg';

/**
 * Creates a role as the test role and makes the test role a member of it, as an admin on a
 * managed server would: on PostgreSQL 16+, CREATEROLE alone gives ADMIN OPTION on the role,
 * not SET ROLE to it, nor DROP OWNED BY it (which a test needs to act as it and to clean up).
 */
export async function createRoleAsMember(pool: pg.Pool, role: string, attributes = ''): Promise<void> {
  await pool.query(`create role ${role} ${attributes}`);
  await pool.query(`grant ${role} to current_user`);
}
