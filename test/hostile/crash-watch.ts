/**
 * The daemon runs inside the test process (startTestApp), so a crash of the daemon is an
 * uncaught exception or unhandled rejection here. Recorded instead of killing the run, so the
 * suite can finish and report every one of them (with its stack, which tells daemon code from
 * test code).
 */
export function watchCrashes(): { events: string[]; stop(): void } {
  const events: string[] = [];
  const onException = (err: unknown): void => {
    events.push(`uncaughtException: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  };
  const onRejection = (reason: unknown): void => {
    events.push(`unhandledRejection: ${reason instanceof Error ? (reason.stack ?? reason.message) : String(reason)}`);
  };
  process.on('uncaughtException', onException);
  process.on('unhandledRejection', onRejection);
  return {
    events,
    stop() {
      process.off('uncaughtException', onException);
      process.off('unhandledRejection', onRejection);
    },
  };
}
