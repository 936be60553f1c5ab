"""What each phase does: functions over resolved inputs. Phases never read env or argv."""
