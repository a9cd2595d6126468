#!/usr/bin/env node
// Launcher for the compiled CLI: `npm install` builds dist/ (the prepare script).
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const entry = new URL('../dist/src/main.js', import.meta.url);
if (!existsSync(fileURLToPath(entry))) {
  process.stderr.write('self-sensored is not built yet: run `npm install` (or `npm run build`) in the checkout first.\n');
  process.exit(1);
}
await import(entry.href);
