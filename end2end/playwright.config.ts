import { defineConfig } from '@playwright/test';
import * as os from 'node:os';
import * as path from 'node:path';

// The server under test: the release build, on its own port, with its own
// fresh database, and short presence timers so leave tests finish quickly.
// The message rate limit is the product's default (5 a second, bursts of 10),
// so the browser's pacing of its sends is tested as users meet it.
const port = Number(process.env.E2E_PORT ?? 3100);
const database = path.join(os.tmpdir(), `chat-e2e-${process.pid}-${Date.now()}.db`);

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
  webServer: {
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
  },
});
