"""Builders that turn each database's files into FaceBehaviorNet TFRecord shards (one folder per task)."""
