import { networkInterfaces } from 'node:os';
import { STATUS_TOPIC_PREFIX } from '../broker/status-topic.js';
import { parseKey } from './auth/key-format.js';

export interface AppSettingsInput {
  host: string;
  httpPort: number;
  wsPath: string;
  tcpPort: number | null;
  topic: string;
  userName: string;
  key: string;
}

/** The host the phone should use: the configured PUBLIC_HOST, else the first LAN IPv4 address. */
export function guessPublicHost(configured: string | undefined): string {
  if (configured) return configured;
  for (const addresses of Object.values(networkInterfaces())) {
    for (const a of addresses ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  }
  return 'localhost';
}

/** The topic to type into the app: the (first) ingest filter's base with the user's name. */
export function suggestedTopic(filters: string, userName: string): string {
  const filter = filters.split(',')[0]!.trim();
  if (!filter.includes('#') && !filter.includes('+')) return filter;
  const base = filter.split('/').filter((level) => level !== '#' && level !== '+');
  // Wildcards are refused in a PUBLISH topic, and a '/' would add levels.
  return [...base, userName.replace(/[+#/\u0000]/g, '_')].join('/');
}

/** The exact values to type into Health Auto Export's MQTT and REST automations. */
export function appSettingsText(s: AppSettingsInput): string {
  const lines = [
    'Health Auto Export > Automations > new automation > MQTT',
    `  Host / IP address:  ${s.host}`,
    `  Port:               ${s.httpPort}   (MQTT over WebSocket)`,
    `  WebSocket path:     ${s.wsPath}`,
    ...(s.tcpPort ? [`  (or plain MQTT over TCP: port ${s.tcpPort}, no path)`] : []),
    `  Topic:              ${s.topic}`,
    `  Username:           ${s.userName}`,
    `  Password:           ${s.key}`,
    ...statusLine(s.key),
    '',
    'Health Auto Export > Automations > new automation > REST API',
    `  URL:                http://${s.host}:${s.httpPort}/api/v1/ingest`,
    `  Header:             Authorization: Bearer ${s.key}`,
    '  Export format:      JSON',
    '',
    'curl test:',
    `  curl -H 'Authorization: Bearer ${s.key}' -H 'Content-Type: application/json' \\`,
    `       --data-binary @export.json http://${s.host}:${s.httpPort}/api/v1/ingest`,
  ];
  return lines.join('\n');
}

/** Where this key's status messages arrive (any MQTT client may watch them; the app does not). */
function statusLine(key: string): string[] {
  const parsed = parseKey(key);
  return parsed ? [`  (what became of each payload: subscribe to ${STATUS_TOPIC_PREFIX}/${parsed.prefix})`] : [];
}
