import { readFileSync } from 'node:fs';
import { AppError } from '../errors.js';
import { settingsSchema, type Config } from './schema.js';

/**
 * Reads the optional config file (KEY=VALUE lines, the same names as the environment variables),
 * overlays the environment, validates everything at once and returns a frozen Config. Every
 * problem is listed in one error so a user fixes them in one go.
 */
export function loadConfig(env: Record<string, string | undefined>, configFile?: string): Config {
  const file = configFile ?? env.CONFIG_FILE;
  const fromFile = file ? readSettingsFile(file) : {};
  const merged: Record<string, string> = { ...fromFile };
  for (const [name, value] of Object.entries(env)) {
    // Empty variables count as unset, as in docker-compose files with `KEY=`.
    if (value !== undefined && value !== '') merged[name] = value;
  }
  const known = new Set(Object.keys(settingsSchema.in.shape));
  const input = Object.fromEntries(Object.entries(merged).filter(([k]) => known.has(k)));
  const unknownInFile = Object.keys(fromFile).filter((k) => !known.has(k) && k !== 'CONFIG_FILE');
  const result = settingsSchema.safeParse(input);
  const problems: string[] = unknownInFile.map((k) => `${k}: not a setting (in ${file})`);
  if (!result.success) {
    for (const issue of result.error.issues) problems.push(`${issue.path.join('.') || '(settings)'}: ${issue.message}`);
  }
  if (problems.length > 0 || !result.success) {
    throw new AppError('SS_CONFIG_INVALID', `configuration is invalid:\n  - ${problems.join('\n  - ')}`, { problems });
  }
  return deepFreeze(result.data);
}

/** The daemon's and CLI's configuration: this process's environment plus the optional file. */
export function loadConfigFromEnvironment(configFile?: string): Config {
  return loadConfig(process.env, configFile);
}

export function readSettingsFile(file: string): Record<string, string> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new AppError('SS_CONFIG_INVALID', `cannot read config file ${file}: ${(err as Error).message}`);
  }
  const settings: Record<string, string> = {};
  text.split(/\r?\n/).forEach((raw, index) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const match = /^(?:export\s+)?([A-Z][A-Z0-9_]*)\s*=\s*(.*)$/.exec(line);
    if (!match) throw new AppError('SS_CONFIG_INVALID', `${file}:${index + 1}: expected KEY=VALUE`);
    let value = match[2]!;
    if (/^(['"]).*\1$/.test(value)) value = value.slice(1, -1);
    else value = value.replace(/\s+#.*$/, '');
    if (value !== '') settings[match[1]!] = value;
  });
  return settings;
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object') {
    for (const child of Object.values(value)) deepFreeze(child);
    Object.freeze(value);
  }
  return value;
}
