/**
 * Where a JSON text first goes wrong, as a UTF-16 offset. Node 20's JSON.parse messages no
 * longer always carry "at position N", and a user fixing a 30 MB export needs the spot. Only
 * called after JSON.parse has failed. A state machine with an explicit stack, so that 10,000
 * levels of nesting cannot overflow the call stack.
 */
export function jsonErrorPosition(text: string): number {
  const n = text.length;
  const stack: Array<'array' | 'object'> = [];
  let state: 'value' | 'key' | 'after' = 'value';
  let i = 0;
  const skipWs = () => {
    while (i < n && (text[i] === ' ' || text[i] === '\n' || text[i] === '\r' || text[i] === '\t')) i++;
  };
  for (;;) {
    skipWs();
    if (state === 'value') {
      const c = text[i];
      if (c === '{' || c === '[') {
        i++;
        skipWs();
        if (text[i] === (c === '{' ? '}' : ']')) {
          i++;
          state = 'after';
        } else {
          stack.push(c === '{' ? 'object' : 'array');
          state = c === '{' ? 'key' : 'value';
        }
      } else if (c === '"') {
        const end = stringEnd(text, i);
        if (end < 0) return -end;
        i = end;
        state = 'after';
      } else {
        const end = scalarEnd(text, i);
        if (end === i) return i;
        i = end;
        state = 'after';
      }
    } else if (state === 'key') {
      if (text[i] !== '"') return i;
      const end = stringEnd(text, i);
      if (end < 0) return -end;
      i = end;
      skipWs();
      if (text[i] !== ':') return i;
      i++;
      state = 'value';
    } else {
      const top = stack.at(-1);
      if (!top) return i;
      const c = text[i];
      if (c === ',') {
        i++;
        state = top === 'object' ? 'key' : 'value';
      } else if ((c === ']' && top === 'array') || (c === '}' && top === 'object')) {
        i++;
        stack.pop();
      } else return i;
    }
  }
}

/** Index after the closing quote, or minus the index of the fault. */
function stringEnd(text: string, start: number): number {
  let i = start + 1;
  while (i < text.length) {
    const c = text.charCodeAt(i);
    if (c === 0x22) return i + 1;
    if (c < 0x20) return -i;
    if (c === 0x5c) {
      const e = text[i + 1];
      if (e === 'u') {
        if (!/^[0-9a-fA-F]{4}$/.test(text.slice(i + 2, i + 6))) return -i;
        i += 6;
      } else if (e !== undefined && '"\\/bfnrt'.includes(e)) i += 2;
      else return -i;
    } else i++;
  }
  return -text.length;
}

const NUMBER = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;

function scalarEnd(text: string, start: number): number {
  for (const word of ['true', 'false', 'null']) if (text.startsWith(word, start)) return start + word.length;
  NUMBER.lastIndex = start;
  return NUMBER.test(text) ? NUMBER.lastIndex : start;
}
