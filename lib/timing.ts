// Milliseconds from process start (performance.timeOrigin) to when `featherman` began its work:
// Node start-up plus module loading, reported by the cold-query benchmark.
let mainStartedAt: number | undefined;

export function markMainStart(): void {
  mainStartedAt ??= performance.now();
}

export function processStartMs(): number | undefined {
  return mainStartedAt === undefined ? undefined : Math.round(mainStartedAt * 100) / 100;
}
