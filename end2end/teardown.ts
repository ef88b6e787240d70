import { execFileSync } from 'node:child_process';

// Drops the schema the two servers of nodes.spec.ts shared.
export default function teardown(): void {
  const schema = process.env.CHAT_E2E_SCHEMA;
  if (!schema) return;
  const postgres = process.env.TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
  execFileSync('psql', [postgres, '-qc', `DROP SCHEMA IF EXISTS ${schema} CASCADE`], {
    env: { ...process.env, PGOPTIONS: '--client-min-messages=warning' },
  });
}
