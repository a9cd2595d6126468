/** Every long-lived component: constructors do no I/O; start() and stop() do. */
export interface Component {
  start(): Promise<void>;
  stop(): Promise<void>;
}
