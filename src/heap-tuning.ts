import v8 from 'node:v8';

/**
 * Turns off V8's allocation-site pretenuring for this process; called first thing by main.ts.
 *
 * V8 watches each allocation site (an object literal, say) and, once most of what it allocates
 * survives a young-generation collection, allocates from that site straight into the old
 * generation, for good. A large export builds a million row and timestamp objects that all
 * survive until they are written, so the HAE parser's sites get pretenured. The small payloads
 * that follow, whose objects die within milliseconds, then allocate there too: the HAE parse of a
 * small payload took twice as long afterwards, and the daemon ~20 % more CPU per small payload
 * (docs/performance.md, "After a large export"). The price: a large export's rows are now copied
 * by young-generation collections before they are written, ~0.7 s of collections per 100 MB
 * export, against a fifth less CPU for every small payload after it.
 *
 * Setting the flag at run time is enough: V8 reads it at every young-generation collection,
 * where it makes these decisions, and none has been made this early.
 */
export function disableAllocationSitePretenuring(): void {
  v8.setFlagsFromString('--no-allocation-site-pretenuring');
}
