export function score(output: string): number { return output.length > 0 ? 1 : 0; }
