// Runs the built `featherman` binary as a separate process, the way Jobs run it.
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { packageRoot } from '../../lib/lake/config.js';

export const CLI = join(packageRoot(), 'dist', 'lib', 'cli.js');

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
  /** The JSON summary line (stdout's last line, or stderr's for streamed query output). */
  json: Record<string, unknown> & { ok?: boolean; error?: string };
}

export function featherman(
  args: string[],
  env: Record<string, string | undefined>,
  opts: { stdin?: string; timeoutMs?: number } = {},
): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], {
      env: { PATH: process.env.PATH, HOME: process.env.HOME, TMPDIR: process.env.TMPDIR, ...env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => {
      stdout += d;
    });
    child.stderr.on('data', (d) => {
      stderr += d;
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 120_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      const lastJson = (text: string) =>
        text
          .trim()
          .split('\n')
          .reverse()
          .find((l) => l.startsWith('{'));
      const line = lastJson(stdout) ?? lastJson(stderr);
      let json = {};
      try {
        json = line ? JSON.parse(line) : {};
      } catch {
        /* not JSON */
      }
      resolve({ code: code ?? -1, stdout, stderr, json });
    });
    child.stdin.end(opts.stdin ?? '');
  });
}
