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

/** `words` as one string that {@link shellWords} splits back into them (to pass on as `CC`, or to show). */
export function shellQuote(words) {
  return words.map((w) => (/^[\w@%+=:,./-]+$/.test(w) ? w : `'${w.replace(/'/g, "'\\''")}'`)).join(' ');
}

/**
 * The one reader of `CC`, `CFLAGS` and `LDFLAGS`: `{ command, args, cflags, ldflags, label, argv }`,
 * where `args` are the words of `CC` after the first (e.g. `gcc` for `CC="ccache gcc"`), and
 * `fallback` is the compiler when `CC` is unset or empty (`cc`; a cross build names its own).
 * `argv(flags)` is one compile-and-link's arguments: `args`, the caller's `flags`, then CFLAGS
 * and LDFLAGS, so that they win (`-O3` after `-O2`). `label` is `CC`, quoted to be passed on.
 */
export function compiler(env = process.env, fallback = 'cc') {
  const cc = shellWords(env.CC ?? '');
  const [command, ...args] = cc.length > 0 ? cc : [fallback];
  const cflags = shellWords(env.CFLAGS ?? '');
  const ldflags = shellWords(env.LDFLAGS ?? '');
  return {
    command,
    args,
    cflags,
    ldflags,
    label: shellQuote([command, ...args]),
    argv: (flags) => [...args, ...flags, ...cflags, ...ldflags],
  };
}

/** The argument list for one compile-and-link: `[command, argv]` with `flags` (the caller's) before CFLAGS. */
export function compileCommand(flags, env = process.env) {
  const cc = compiler(env);
  return [cc.command, cc.argv(flags)];
}
