export function pgliteImageFile(): Promise<string>;
export function buildPgliteImage(): Promise<string>;
