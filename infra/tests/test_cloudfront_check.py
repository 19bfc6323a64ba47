"""scripts/deploy.sh's CloudFront check (infra/cloudfront_check.py): whether a first deploy
can create its distribution."""

import pathlib
import sys
import unittest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from cloudfront_check import QUOTA_CODE, verdict  # noqa: E402


class Verdict(unittest.TestCase):
    def test_room_for_one_more(self):
        self.assertIsNone(verdict(False, 199, 200))

    def test_a_full_account_is_told_what_to_request(self):
        problem = verdict(False, 200, 200)
        self.assertIn(QUOTA_CODE, problem)
        self.assertIn("--desired-value 201", problem)

    def test_an_update_needs_no_new_distribution(self):
        self.assertIsNone(verdict(True, 200, 200))


if __name__ == "__main__":
    unittest.main()
