// A hint for a misspelt name: the closest known one, if it is close enough to be the intent.
import { closestMatch } from 'leven';

/** ` (did you mean "x"?)` for the nearest candidate within 2 edits (1 for a 3-letter name, none for shorter: a swap of two letters is 2), else ''. */
export function didYouMean(name: string, candidates: Iterable<string>): string {
  const maxDistance = name.length < 3 ? 0 : name.length === 3 ? 1 : 2;
  if (maxDistance === 0) return '';
  const near = closestMatch(name, [...candidates].filter((c) => c !== name), { maxDistance });
  return near === undefined ? '' : ` (did you mean "${near}"?)`;
}
