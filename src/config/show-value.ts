// How a value the user wrote is shown in a configuration error message. The error classes
// themselves (ConfigError, ConfigValueError) are in the catalogue, src/errors.ts.

/** How a value the user wrote is shown in a message: strings quoted, collections named. */
export function showValue(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'an empty value';
  if (typeof value === 'string') return JSON.stringify(value);
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  return String(value);
}
