// The AWS SDK warns on every process start that its future releases need Node 22. Our versions are
// pinned, so that warning is noise in Job logs and benchmark output; every other warning still prints.
export function quietSdkWarnings(): void {
  process.removeAllListeners('warning');
  process.on('warning', (w) => {
    if (!`${w.name} ${w.message}`.includes('NodeVersionSupportWarning')) console.error(`warning: ${w.name}: ${w.message}`);
  });
}
