// The C compiler every script uses (the addons, the codec fuzzer, the benchmarks' C tools):
// `CC` and `CFLAGS` (and `LDFLAGS`) from the environment, as make reads them, so
// `CC="ccache gcc"`, `CC=aarch64-linux-gnu-gcc` and `CFLAGS="-O3 -march=native"` work everywhere.
// They are split into words as a shell would split them (quotes and backslashes), but no shell runs.

/** Splits `text` into words like a POSIX shell (single and double quotes, backslash escapes; no expansion). */
export function shellWords(text) {
  const words = [];
  let word = null;
  let quote = null;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quote === "'") {
      if (c === "'") quote = null;
      else word += c;
    } else if (quote === '"') {
      if (c === '"') quote = null;
      else if (c === '\\' && i + 1 < text.length && '"\\$`'.includes(text[i + 1])) word += text[++i];
      else word += c;
    } else if (c === "'" || c === '"') {
      quote = c;
      word ??= '';
    } else if (c === '\\' && i + 1 < text.length) {
      word = (word ?? '') + text[++i];
    } else if (/\s/.test(c)) {
      if (word !== null) words.push(word);
      word = null;
    } else {
      word = (word ?? '') + c;
    }
  }
  if (quote !== null) throw new Error(`unterminated ${quote} quote in ${JSON.stringify(text)}`);
  if (word !== null) words.push(word);
  return words;
}

/**
 * The compiler command: `{ command, args }`, where `args` are the words of `CC` after the first
 * (e.g. `gcc` for `CC="ccache gcc"`), and the extra flags from `CFLAGS` and `LDFLAGS`, which go
 * after the caller's own so that they win (`-O3` after `-O2`).
 */
export function compiler(env = process.env) {
  const cc = shellWords(env.CC ?? '');
  const [command = 'cc', ...args] = cc;
  return {
    command,
    args,
    cflags: shellWords(env.CFLAGS ?? ''),
    ldflags: shellWords(env.LDFLAGS ?? ''),
    label: cc.length > 0 ? cc.join(' ') : 'cc',
  };
}

/** The argument list for one compile-and-link: `[command, argv]` with `flags` (the caller's) before CFLAGS. */
export function compileCommand(flags, env = process.env) {
  const cc = compiler(env);
  return [cc.command, [...cc.args, ...flags, ...cc.cflags, ...cc.ldflags]];
}
