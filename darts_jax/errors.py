"""User-facing errors: one line that says what is wrong and how to fix it."""


class UserError(Exception):
  """A problem with the user's input (config, data, genotype, workdir).

  `darts_jax.main` prints these as a single `error: ...` line and exits with
  status 2 instead of showing a traceback. The message must name the fix.
  """
