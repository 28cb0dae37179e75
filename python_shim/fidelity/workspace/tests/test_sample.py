"""item17: a unittest module loaded by name from the workspace."""
import unittest

from layout.plain import func


class SampleTest(unittest.TestCase):
    def test_ok(self):
        self.assertEqual(func(), 1)

    def test_fails(self):
        self.assertEqual(func() + 1, 3)

    def test_errors(self):
        raise RuntimeError("kaboom")

    @unittest.skip("not today")
    def test_skipped(self):
        pass
