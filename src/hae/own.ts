/**
 * Sets an own, enumerable property even for the key `__proto__` (JSON.parse makes it an own key;
 * plain assignment would instead try to change the object's prototype and drop the value).
 */
export function setOwn<V>(target: Record<string, V>, key: string, value: V): void {
  Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
}
