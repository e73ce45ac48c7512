"""corral.controllers"""
