import { defineConfig } from "vitest/config";

// Two projects: `unit` (everything, in parallel; `npm run test:ts`) and `learning` (the one slow
// test that trains the tiny policy for 100 steps and checks that the reward goes up; run alone,
// after the others, by `npm run test:learning`, so no other test competes for the CPU).
const LEARNING = "bench/learning/learning.test.ts";

export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: "unit",
          include: ["src/**/*.test.ts", "bench/**/*.test.ts"],
          exclude: [LEARNING],
          testTimeout: 60_000,
          hookTimeout: 120_000,
        },
      },
      {
        test: { name: "learning", include: [LEARNING], testTimeout: 3_600_000 },
      },
    ],
  },
});
