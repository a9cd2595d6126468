import assert from 'node:assert/strict';
import { once } from 'node:events';
import { setTimeout as delay } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import { WebSocket } from 'ws';
import { startTestApp, waitFor, type TestApp } from './helpers/app.js';
import { connectPacket, publishPacket } from './hostile/mqtt-packets.js';

describe('MQTT over WebSocket: a packet the daemon writes leaves as one frame', () => {
  let t: TestApp;
  let key: string;
  before(async () => {
    t = await startTestApp();
    key = await t.createKey('frames');
  });
  after(async () => t?.close());

  test('CONNACK and PUBACK each arrive whole, in one WebSocket frame', async () => {
    const ws = new WebSocket(t.wsUrl, 'mqtt');
    const frames: Buffer[] = [];
    ws.on('message', (data: Buffer) => frames.push(Buffer.from(data)));
    await once(ws, 'open');
    try {
      /** The frames received until none has come for a while. */
      const answer = async (what: string): Promise<Buffer[]> => {
        await waitFor(() => frames.length > 0, 10_000, what);
        // mqtt-packet writes a packet in pieces; any piece sent as a frame of its own arrives by then.
        await delay(200);
        return frames.splice(0);
      };
      ws.send(connectPacket({ clientId: 'frames', password: key }));
      assert.deepEqual(await answer('the CONNACK'), [Buffer.from([0x20, 0x02, 0x00, 0x00])]);
      const payload = JSON.stringify({ data: { metrics: [{ name: 'step_count', units: 'count', data: [{ date: '2025-03-01 10:00:00 +0100', qty: 5, source: 'Anna’s iPhone' }] }] } });
      ws.send(publishPacket('health/frames', payload, 1, 7));
      assert.deepEqual(await answer('the PUBACK'), [Buffer.from([0x40, 0x02, 0x00, 0x07])]);
    } finally {
      ws.terminate();
    }
  });
});
