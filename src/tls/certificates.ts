import { readFileSync } from 'node:fs';
import { createSecureContext, type SecureContextOptions } from 'node:tls';
import { AppError, errorMessage } from '../errors.js';
import type { Logger } from '../log.js';

export interface CertificateFiles {
  certFile: string;
  keyFile: string;
}

/**
 * The certificate and key of the HTTPS/WSS and MQTT-over-TLS listeners. Read and checked at
 * start-up (a missing file or a key that does not match its certificate stops the start with a
 * clear error); reload() reads them again (on SIGHUP, after a renewal) and hands a good pair to
 * every listener, while a bad pair is logged and the old one stays in use.
 */
export class TlsCertificates {
  readonly #files: CertificateFiles;
  readonly #logger: Logger;
  readonly #listeners: Array<(tls: SecureContextOptions) => void> = [];
  #current: SecureContextOptions | null = null;

  constructor(files: CertificateFiles, logger: Logger) {
    this.#files = files;
    this.#logger = logger;
  }

  /** The pair in use; read on first use. Throws SS_CONFIG_INVALID when it cannot be used. */
  get current(): SecureContextOptions {
    this.#current ??= readPair(this.#files);
    return this.#current;
  }

  /** Called with every good new pair. */
  onReload(listener: (tls: SecureContextOptions) => void): void {
    this.#listeners.push(listener);
  }

  /** Reads the files again; true when the new pair is in use, false when the old one stays. */
  reload(): boolean {
    let next: SecureContextOptions;
    try {
      next = readPair(this.#files);
    } catch (err) {
      this.#logger.error({ error: errorMessage(err) }, 'TLS certificate reload failed; the previous certificate stays in use');
      return false;
    }
    this.#current = next;
    for (const listener of this.#listeners) listener(next);
    this.#logger.info({ certFile: this.#files.certFile }, 'TLS certificate reloaded');
    return true;
  }
}

function readPair(files: CertificateFiles): SecureContextOptions {
  let pair: SecureContextOptions;
  try {
    pair = { cert: readFileSync(files.certFile), key: readFileSync(files.keyFile) };
  } catch (err) {
    throw new AppError('SS_CONFIG_INVALID', `TLS_CERT_FILE / TLS_KEY_FILE cannot be read: ${(err as Error).message}`);
  }
  try {
    // Fails on a malformed certificate or key, and on a key that does not belong to the certificate.
    createSecureContext(pair);
  } catch (err) {
    throw new AppError('SS_CONFIG_INVALID', `TLS_CERT_FILE (${files.certFile}) and TLS_KEY_FILE (${files.keyFile}) are not a usable pair: ${(err as Error).message}`);
  }
  return pair;
}
