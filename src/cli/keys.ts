import { createInterface } from 'node:readline';
import type pg from 'pg';
import { createdKeyToJson, keyToJson } from '../auth/key-json.js';
import { KeyManagement } from '../auth/key-management.js';
import { KeyStore, type CreatedKey } from '../auth/key-store.js';
import { AppError } from '../errors.js';
import { formatKeyTable } from './output.js';

export interface KeysCommand {
  sub: 'create' | 'list' | 'revoke';
  arg: string | undefined;
  user: string | undefined;
  label: string | undefined;
  scopes: string[];
  expires: string | undefined;
  /** `-` means: read it from standard input, so that it stays out of the shell history. */
  key: string | undefined;
  json: boolean;
}

export const KEYS_USAGE = `  keys create --user NAME [--label TEXT] [--scope ingest|read|admin]... [--expires 90d|DATE]
              [--key VALUE | --key -] [--json]
                                          create an API key (printed once); --key registers a key
                                          of your own (- reads it from standard input)
  keys list [--user NAME] [--json]        list API keys (never the keys themselves)
  keys revoke ID|PREFIX                   revoke an API key`;

/** Checks the arguments before anything is started, so usage errors come fast. */
export function parseKeysCommand(
  sub: string | undefined,
  arg: string | undefined,
  values: { user?: string | undefined; label?: string | undefined; scope?: string[] | undefined; expires?: string | undefined; key?: string | undefined; json: boolean },
): KeysCommand {
  if (sub !== 'create' && sub !== 'list' && sub !== 'revoke') throw new AppError('SS_USAGE', 'usage: self-sensored keys create|list|revoke');
  if (sub === 'create' && !values.user) throw new AppError('SS_USAGE', 'keys create needs --user NAME');
  if (sub === 'revoke' && !arg) throw new AppError('SS_USAGE', 'keys revoke needs the key ID (or its prefix)');
  if (sub !== 'create' && (values.key !== undefined || values.scope?.length || values.expires !== undefined || values.label !== undefined)) {
    throw new AppError('SS_USAGE', '--key, --scope, --expires and --label only go with keys create');
  }
  return {
    sub,
    arg,
    user: values.user,
    label: values.label,
    scopes: values.scope ?? [],
    expires: values.expires,
    key: values.key,
    json: values.json,
  };
}

export async function runKeysCommand(
  cmd: KeysCommand,
  pool: pg.Pool,
  io: { stdin: NodeJS.ReadableStream; write: (text: string) => void; warn: (text: string) => void; createdText: (created: CreatedKey) => string },
): Promise<number> {
  // No authenticator in this process: the daemon notices a revocation within AUTH_CACHE_REFRESH_MS.
  const management = new KeyManagement({ keys: new KeyStore(pool) });
  switch (cmd.sub) {
    case 'create': {
      if (cmd.key !== undefined && cmd.key !== '-') io.warn('note: a key typed on the command line stays in the shell history; --key - reads it from standard input\n');
      const key = cmd.key === '-' ? await readKeyFromStdin(io.stdin) : cmd.key;
      const created = await management.create({ user: cmd.user!, label: cmd.label, scopes: cmd.scopes, expires: cmd.expires, ...(key !== undefined ? { key } : {}) });
      io.write(cmd.json ? `${JSON.stringify(createdKeyToJson(created))}\n` : `${io.createdText(created)}\n`);
      return 0;
    }
    case 'list': {
      const list = await management.list({ user: cmd.user });
      io.write(cmd.json ? `${JSON.stringify(list.map(keyToJson), null, 2)}\n` : `${formatKeyTable(list)}\n`);
      return 0;
    }
    case 'revoke': {
      const result = await management.revoke(cmd.arg!);
      io.write(
        result.alreadyRevoked
          ? `${cmd.arg} was already revoked\n`
          : `revoked ${cmd.arg}; the daemon refuses it and closes its connections within seconds\n`,
      );
      return 0;
    }
  }
}

/** The first line of standard input, typed or piped; the line break is not part of the key. */
async function readKeyFromStdin(stdin: NodeJS.ReadableStream): Promise<string> {
  if ((stdin as { isTTY?: boolean }).isTTY) process.stderr.write('Key (one line, then Enter): ');
  const lines = createInterface({ input: stdin, terminal: false });
  try {
    for await (const line of lines) return line;
  } finally {
    lines.close();
  }
  throw new AppError('SS_KEY_TOO_WEAK', 'no key on standard input');
}
