/**
 * MQTT 3.1.1 topic filter matching (section 4.7). Written here rather than borrowed from
 * Aedes' internals (qlobber) because we need one filter checked per PUBLISH, not a trie.
 */

export type TopicMatcher = (topic: string) => boolean;

/** True when `filter` is a syntactically valid MQTT topic filter. */
export function isValidTopicFilter(filter: string): boolean {
  if (filter.length === 0 || filter.includes('\u0000')) return false;
  const levels = filter.split('/');
  return levels.every((level, i) => {
    if (level === '#') return i === levels.length - 1; // '#' only as the whole last level
    if (level === '+') return true;
    return !level.includes('#') && !level.includes('+'); // wildcards must fill a whole level
  });
}

/** Does a concrete topic name match the filter? Assumes a valid filter. */
export function topicMatchesFilter(filter: string, topic: string): boolean {
  return matchesLevels(filter.split('/'), topic);
}

/** topicMatchesFilter with the filter already split into its levels. */
function matchesLevels(f: readonly string[], topic: string): boolean {
  // [MQTT-4.7.2-1]: '$' topics are not matched by filters starting with a wildcard.
  if (topic.startsWith('$') && (f[0]!.startsWith('+') || f[0]!.startsWith('#'))) return false;
  const t = topic.split('/');
  for (let i = 0; i < f.length; i++) {
    const level = f[i];
    // '#' also matches the parent level: 'health/#' matches 'health'.
    if (level === '#') return true;
    if (i >= t.length) return false;
    if (level !== '+' && level !== t[i]) return false;
  }
  return f.length === t.length;
}

/** Validates once, then returns a matcher bound to the filter. */
export function compileTopicFilter(filter: string): TopicMatcher {
  if (!isValidTopicFilter(filter)) {
    throw new Error(`Invalid MQTT topic filter: ${JSON.stringify(filter)}`);
  }
  const levels = filter.split('/');
  return (topic) => matchesLevels(levels, topic);
}

/** MQTT_INGEST_TOPIC_FILTER holds one filter or several separated by commas. */
export function parseTopicFilterList(list: string): string[] {
  return list
    .split(',')
    .map((filter) => filter.trim())
    .filter((filter) => filter.length > 0);
}

/** A matcher for "any of these filters"; throws on an invalid one. */
export function compileTopicFilterList(list: string): TopicMatcher {
  const filters = parseTopicFilterList(list);
  if (filters.length === 0) throw new Error('No MQTT topic filter given');
  const matchers = filters.map(compileTopicFilter);
  // Every PUBLISH is checked, and a phone publishes to the same topic every time.
  let lastTopic: string | undefined;
  let lastMatched = false;
  return (topic) => {
    if (topic !== lastTopic) {
      lastMatched = matchers.some((matches) => matches(topic));
      lastTopic = topic;
    }
    return lastMatched;
  };
}

/** Could some topic name match both filters? Both must be valid. */
export function topicFiltersOverlap(a: string, b: string): boolean {
  const x = a.split('/');
  const y = b.split('/');
  for (let i = 0; i < Math.max(x.length, y.length); i++) {
    const l = x[i];
    const r = y[i];
    if (l === '#' || r === '#') return !(i === 0 && (startsWithDollar(l ?? '') || startsWithDollar(r ?? '')));
    if (l === undefined || r === undefined) return false;
    if (i === 0 && (l === '+' || r === '+') && (startsWithDollar(l) || startsWithDollar(r))) return false;
    if (l !== '+' && r !== '+' && l !== r) return false;
  }
  return true;
}

function startsWithDollar(level: string): boolean {
  return level.startsWith('$');
}
