"""corral.net"""
