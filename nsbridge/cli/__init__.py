"""The command line: thin verbs over the Engine.

A CLI process lives for tens of milliseconds and builds no reference cycles
worth collecting; the collector running during its imports costs ~2 ms of
every command, so it is off for the command line (not for the library)."""
import gc

gc.disable()
