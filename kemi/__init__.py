"""KEMI Python routing script for Kamailio (app_python3); standard library only."""
