import { defineConfig } from '@playwright/test';
import * as os from 'node:os';
import * as path from 'node:path';

// The server under test: the release build, on its own port, with its own
// fresh database, and short presence timers so leave tests finish quickly.
// The message rate limit is the product's default (5 a second, bursts of 10),
// so the browser's pacing of its sends is tested as users meet it.
const port = Number(process.env.E2E_PORT ?? 3100);
const database = path.join(os.tmpdir(), `chat-e2e-${process.pid}-${Date.now()}.db`);

// Two more servers that make one chat (nodes.spec.ts): the machine's
// PostgreSQL, in a schema of their own (made by the first, dropped by
// teardown.ts), and its Redis under a key prefix of their own.
const nodes = [port + 1, port + 2];
const postgres = process.env.TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const redis = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
process.env.CHAT_E2E_SCHEMA ??= `chat_e2e_${process.pid}_${Date.now()}`;
const schema = process.env.CHAT_E2E_SCHEMA;
// Both servers may ask at once; the loser of that race finds it made.
const makeSchema = `psql "${postgres}" -qc 'CREATE SCHEMA IF NOT EXISTS ${schema}' || psql "${postgres}" -qc 'CREATE SCHEMA IF NOT EXISTS ${schema}'`;
const node = (nodePort: number) => ({
  command: `${makeSchema} && exec target/release/server`,
  cwd: '..',
  url: `http://127.0.0.1:${nodePort}/healthz`,
  reuseExistingServer: false,
  timeout: 60_000,
  stdout: 'ignore' as const,
  stderr: 'pipe' as const,
  env: {
    BIND: `127.0.0.1:${nodePort}`,
    DATABASE_URL: `${postgres}?options[search_path]=${schema},public`,
    REDIS_URL: redis,
    REDIS_PREFIX: `${schema}:`,
    LEPTOS_SITE_ROOT: 'target/site',
    GRACE_MS: '1500',
    RUST_LOG: 'warn',
  },
});

export default defineConfig({
  testDir: './tests',
  fullyParallel: false,
  workers: 1,
  retries: 0,
  forbidOnly: true,
  timeout: 30_000,
  expect: { timeout: 10_000 },
  reporter: [['list']],
  use: {
    baseURL: `http://127.0.0.1:${port}`,
    launchOptions: {
      executablePath: '/usr/bin/chromium',
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    },
  },
  globalTeardown: './teardown.ts',
  webServer: [{
    command: 'target/release/server',
    cwd: '..',
    url: `http://127.0.0.1:${port}/healthz`,
    reuseExistingServer: false,
    timeout: 60_000,
    stdout: 'ignore',
    stderr: 'pipe',
    env: {
      BIND: `127.0.0.1:${port}`,
      DATABASE_URL: `sqlite://${database}`,
      LEPTOS_SITE_ROOT: 'target/site',
      GRACE_MS: '1500',
      RUST_LOG: 'warn',
    },
  }, ...nodes.map(node)],
});
