import type { z } from "zod";

/** An error the user can fix: printed as one line, exit code 2, no stack trace. */
export class UserError extends Error {
  override name = "UserError";
}

/** Validates a command's parsed options; the first problem becomes a one-line UserError. */
export function parseOptions<T extends z.ZodType>(schema: T, raw: unknown): z.output<T> {
  const parsed = schema.safeParse(raw);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0]!;
  throw new UserError(`--${issue.path.join(".")}: ${issue.message}`);
}
