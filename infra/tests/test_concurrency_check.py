"""scripts/deploy.sh's concurrency check (infra/concurrency_check.py): when a deploy fits the
account's Lambda concurrency, and what it asks for when it does not."""

import pathlib
import sys
import unittest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from concurrency_check import MIN_UNRESERVED, QUOTA_CODE, verdict  # noqa: E402

NONE = {"processor": 0, "api": 0, "generator": 0}


class Verdict(unittest.TestCase):
    def test_a_new_account_of_10_fits_the_default_deploy(self):
        self.assertIsNone(verdict(10, 10, 0, NONE, "us-east-1"))

    def test_a_new_account_of_10_cannot_reserve(self):
        problem = verdict(10, 10, 0, {**NONE, "processor": 50}, "eu-west-1")
        self.assertIsNotNone(problem)
        # 50 reserved + 100 left unreserved: the limit must reach 150.
        self.assertIn("--desired-value 150 --region eu-west-1", problem)
        self.assertIn(QUOTA_CODE, problem)
        self.assertIn("Concurrent executions", problem)

    def test_a_redeploy_counts_its_own_reservation_as_free(self):
        # 1000 limit, 900 unreserved because this stage already reserves 100.
        self.assertIsNone(verdict(1000, 900, 100, {**NONE, "processor": 100}, "us-east-1"))
        # The same request without giving the old reservation back would not fit.
        self.assertIsNotNone(verdict(1000, 150, 0, {**NONE, "processor": 100}, "us-east-1"))

    def test_the_minimum_unreserved_is_kept(self):
        limit = 200
        fits = verdict(limit, limit, 0, {**NONE, "processor": limit - MIN_UNRESERVED}, "us-east-1")
        over = verdict(limit, limit, 0, {**NONE, "processor": limit - MIN_UNRESERVED + 1}, "us-east-1")
        self.assertIsNone(fits)
        self.assertIn(f"--desired-value {limit + 1} ", over)

    def test_an_account_whose_pool_others_reserved_is_too_small(self):
        problem = verdict(1000, 3, 0, NONE, "us-east-1")
        self.assertIsNotNone(problem)
        self.assertIn("free concurrency reserved by other functions", problem)


if __name__ == "__main__":
    unittest.main()
