"""Releasing student workbooks and grading submissions."""
