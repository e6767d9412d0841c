/** What every family returns: its parameters (for the corpus record) and the Python source. */
export interface Program {
  params: Record<string, unknown>;
  code: string;
}
