import mqtt, { type MqttClient } from 'mqtt';

/** An MQTT 3.1.1 connection that never reconnects: a drop must show as an error, not be papered over. */
export function connectOnce(url: string, key: string, clientId?: string): Promise<MqttClient> {
  return new Promise((resolve, reject) => {
    const client = mqtt.connect(url, {
      ...(clientId ? { clientId } : {}),
      username: 'bench',
      password: key,
      protocolVersion: 4,
      reconnectPeriod: 0,
      connectTimeout: 30_000,
      keepalive: 60,
      clean: true,
    });
    client.once('connect', () => resolve(client));
    client.once('error', (err) => {
      client.end(true);
      reject(err);
    });
  });
}

/**
 * QoS 1 publish that resolves on PUBACK and rejects when the connection closes first (without
 * reconnection mqtt.js would keep the callback waiting for ever).
 */
export function publishAcked(client: MqttClient, topic: string, body: Buffer): Promise<void> {
  if (!client.connected) return Promise.reject(new Error('not connected'));
  return new Promise((resolve, reject) => {
    const onClose = () => reject(new Error('connection closed before PUBACK'));
    client.once('close', onClose);
    client.publish(topic, body, { qos: 1 }, (err) => {
      client.off('close', onClose);
      if (err) reject(err);
      else resolve();
    });
  });
}
