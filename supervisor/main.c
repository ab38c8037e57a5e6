/* placeholder, replaced by the command line module */
int main(void)
{
        return 0;
}
