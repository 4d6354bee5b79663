"""The musicrec command line."""

import os

# The embedded PostgreSQL is started and stopped through subprocesses (fork + exec) while gRPC's
# threads run. gRPC's fork handlers do nothing useful for an exec'd child and log a warning for
# each fork, so they are off unless the user turns them on.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")
