// "Did you mean" for misspelled keys and values. Pure.
//
// Distance is optimal string alignment (Levenshtein plus adjacent transposition), so
// `tiemout` is one edit from `timeout`. Separators and case are ignored first, so
// `fastInterval` and `fast-interval` find `fast_interval`.

function normalize(word: string): string {
  return word.toLowerCase().replace(/[-_\s]/g, '');
}

/** Optimal string alignment distance between two strings. */
export function editDistance(a: string, b: string): number {
  const rows = a.length + 1;
  const cols = b.length + 1;
  const d: number[][] = Array.from({ length: rows }, (_, i) => Array.from({ length: cols }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i < rows; i++) {
    for (let j = 1; j < cols; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let best = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) best = Math.min(best, d[i - 2]![j - 2]! + 1);
      d[i]![j] = best;
    }
  }
  return d[a.length]![b.length]!;
}

/**
 * The candidate the user most likely meant, or undefined when none is close enough to be a
 * useful guess (a wrong suggestion is worse than none). `substrings: false` keeps only close
 * spellings, not abbreviations.
 */
export function didYouMean(input: string, candidates: readonly string[], options: { substrings?: boolean } = {}): string | undefined {
  const wanted = normalize(input);
  if (wanted === '') return undefined;
  const same = candidates.find((c) => normalize(c) === wanted);
  if (same !== undefined) return same;

  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of candidates) {
    const distance = editDistance(wanted, normalize(candidate));
    const allowed = Math.max(1, Math.floor(candidate.length / 3));
    if (distance <= allowed && distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  if (best !== undefined) return best;

  // An abbreviation or a longer spelling: `lag` for `max_replica_lag`, `queue_timeout_ms`.
  if (options.substrings !== false && wanted.length >= 3) {
    const containing = candidates.filter((c) => normalize(c).includes(wanted) || wanted.includes(normalize(c)));
    if (containing.length === 1) return containing[0];
  }
  return undefined;
}
