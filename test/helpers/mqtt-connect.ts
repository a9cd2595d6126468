import mqtt, { type MqttClient } from 'mqtt';

/** A connected mqtt.js client that never reconnects on its own; rejects on a refused CONNACK. */
export function connectMqtt(url: string, password: string, extra: mqtt.IClientOptions = {}): Promise<MqttClient> {
  return new Promise((resolve, reject) => {
    const client = mqtt.connect(url, { username: 'phone', password, reconnectPeriod: 0, connectTimeout: 5_000, ...extra });
    client.once('connect', () => resolve(client));
    client.once('error', (err) => {
      client.end(true);
      reject(err);
    });
  });
}
