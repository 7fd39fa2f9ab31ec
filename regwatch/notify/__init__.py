"""Notifications: each sink a follower of the log, delivering at least once, in log order."""
