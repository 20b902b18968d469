export function newestMtime(path: string): number;
export function distIsStale(root: string): boolean;
export function consoleBuildIsStale(root: string): boolean;
