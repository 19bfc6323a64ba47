"""scripts/deploy.sh's concurrency check (infra/concurrency_check.py): when a deploy fits the
account's Lambda concurrency, and what it asks for when it does not."""

import pathlib
import sys
import unittest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from concurrency_check import (  # noqa: E402
    API_CAP, MIN_UNRESERVED, QUOTA_CODE, ReservationTooLow, plan, verdict)

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


class Plan(unittest.TestCase):
    def test_dev_keeps_what_was_asked(self):
        self.assertEqual(plan("dev", 10, 4, NONE), NONE)

    def test_outside_dev_the_processor_is_isolated_and_the_api_capped(self):
        got = plan("prod", 1000, 0, NONE)
        self.assertEqual(got["processor"], 8)  # twice the 4 shards a new stream starts with
        self.assertEqual(got["api"], API_CAP)
        self.assertEqual(got["generator"], 0)
        self.assertIsNone(verdict(1000, 1000, 0, got, "us-east-1"))

    def test_the_processor_follows_the_stream(self):
        self.assertEqual(plan("prod", 1000, 30, NONE)["processor"], 60)

    def test_a_small_account_gets_the_floor_and_is_told_what_to_request(self):
        got = plan("staging", 10, 4, NONE)
        self.assertEqual(got["api"], 2)
        problem = verdict(10, 10, 0, got, "us-east-1")
        self.assertIn("--desired-value 110", problem)

    def test_a_processor_reservation_below_the_shards_is_refused(self):
        with self.assertRaises(ReservationTooLow):
            plan("prod", 1000, 12, {**NONE, "processor": 6})
        self.assertEqual(plan("prod", 1000, 12, {**NONE, "processor": 12})["processor"], 12)

    def test_an_asked_api_reservation_is_kept(self):
        self.assertEqual(plan("prod", 1000, 4, {**NONE, "api": 7})["api"], 7)


if __name__ == "__main__":
    unittest.main()
