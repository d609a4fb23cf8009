"""The guards (issue #13): request-path stages that stop a call before it does harm, one module per guard."""
